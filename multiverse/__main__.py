from multiverse.cli import main

main()
