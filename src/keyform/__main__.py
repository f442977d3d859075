from keyform.cli import console

console()
