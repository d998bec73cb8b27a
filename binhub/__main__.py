from binhub.cli.main import main

main()
