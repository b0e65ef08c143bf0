from spriteforge.cli import main

main()
