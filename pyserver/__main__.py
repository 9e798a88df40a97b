from pyserver.cli import main

raise SystemExit(main())
