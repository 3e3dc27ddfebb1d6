from jouleflow.cli import main

raise SystemExit(main())
