import java.io.FileInputStream;
import java.security.Security;
import java.security.cert.CertPath;
import java.security.cert.CertPathValidator;
import java.security.cert.CertPathValidatorException;
import java.security.cert.CertificateFactory;
import java.security.cert.PKIXParameters;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Java's own PKIX validation of a chain with revocation on, CRLs fetched from
 * the distribution points named in every certificate of the path.
 * Usage: PathCheck ROOT.pem LEAF.pem [INTERMEDIATE.pem ...]; prints VALID or
 * INVALID index reason message, exit 0 or 1.
 */
public final class PathCheck {
    private static X509Certificate load(CertificateFactory factory, String path) throws Exception {
        try (FileInputStream in = new FileInputStream(path)) {
            return (X509Certificate) factory.generateCertificate(in);
        }
    }

    public static void main(String[] args) throws Exception {
        // Fetch CRLs from CDP URLs (off by default in the JDK); OCSP stays off
        // so that only the CRLs decide.
        System.setProperty("com.sun.security.enableCRLDP", "true");
        Security.setProperty("ocsp.enable", "false");
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        X509Certificate root = load(factory, args[0]);
        List<X509Certificate> chain = new ArrayList<>();
        for (int i = 1; i < args.length; i++) {
            chain.add(load(factory, args[i]));
        }
        CertPath path = factory.generateCertPath(chain);
        PKIXParameters params = new PKIXParameters(Collections.singleton(new TrustAnchor(root, null)));
        params.setRevocationEnabled(true);
        try {
            CertPathValidator.getInstance("PKIX").validate(path, params);
            System.out.println("VALID");
        } catch (CertPathValidatorException e) {
            System.out.println("INVALID " + e.getIndex() + " " + e.getReason() + " " + e.getMessage());
            System.exit(1);
        }
    }
}
