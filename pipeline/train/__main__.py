from pipeline.train.cli import main

raise SystemExit(main())
