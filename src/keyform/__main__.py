from keyform.cli import main

main()
