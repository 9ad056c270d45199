"""The approval policy's arithmetic and its signature, without a CA home."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tui_ca.engine.approval_policy import (
    ApprovalPolicy,
    ApprovalRule,
    PolicyTamperedError,
    parse_rule,
    sign_policy,
    verified_policy,
)
from tui_ca.engine.errors import InputError


def test_the_strictest_applicable_figure_wins():
    policy = ApprovalPolicy(approvals=2, renewal_approvals=1, rules=(ApprovalRule("*.bank.example", 3),))
    assert policy.required_for(["phone-17"], renewal=False) == 2
    assert policy.required_for(["phone-17"], renewal=True) == 1
    assert policy.required_for(["DNS:pay.BANK.example"[4:]], renewal=True) == 3
    assert policy.required_for(["www.bank.example.evil"], renewal=False) == 2


def test_default_policy_is_one_approval():
    assert ApprovalPolicy().is_default
    assert ApprovalPolicy().required_for(["x"], renewal=False) == 1
    assert not ApprovalPolicy(approvals=2).is_default


@pytest.mark.parametrize("text", ["", "=3", "*.x", "*.x=", "*.x=three", "*.x=²", "*.x=0", "*.x=10", "a\x1bb=2"])
def test_bad_rules_are_refused_with_one_line(text):
    with pytest.raises(InputError) as caught:
        parse_rule(text)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("count", [0, -1, 10, 1000])
def test_counts_out_of_range_are_refused(count):
    with pytest.raises(InputError):
        ApprovalPolicy(approvals=count)


@pytest.mark.parametrize("make_key", [lambda: ec.generate_private_key(ec.SECP256R1()),
                                      lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)])
def test_signed_policy_verifies_and_a_lowered_one_does_not(make_key):
    key = make_key()
    policy = ApprovalPolicy(approvals=3, rules=(ApprovalRule("*.bank.example", 4),))
    stored = sign_policy(policy, key)
    assert verified_policy(stored, key.public_key()) == policy
    lowered = {**stored, "policy": {**stored["policy"], "approvals": 1}}
    with pytest.raises(PolicyTamperedError):
        verified_policy(lowered, key.public_key())
    other = make_key()
    with pytest.raises(PolicyTamperedError):
        verified_policy(stored, other.public_key())


@pytest.mark.parametrize("stored", [{}, {"policy": [], "sig": "x"}, {"policy": {"approvals": 2}, "sig": "!!"}])
def test_damaged_stored_policy_is_refused_not_defaulted(stored):
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(PolicyTamperedError):
        verified_policy(stored, key.public_key())


def test_no_stored_policy_is_the_default():
    key = ec.generate_private_key(ec.SECP256R1())
    assert verified_policy(None, key.public_key()) == ApprovalPolicy()
