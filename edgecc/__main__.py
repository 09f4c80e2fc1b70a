from edgecc.compiler.cli import main

raise SystemExit(main())
