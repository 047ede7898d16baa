from flashsale.cli import main

main()
