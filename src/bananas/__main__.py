from bananas.cli.main import main

main()
