from autoaug.cli import main

raise SystemExit(main())
