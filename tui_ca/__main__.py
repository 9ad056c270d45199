from tui_ca.cli import main

raise SystemExit(main())
