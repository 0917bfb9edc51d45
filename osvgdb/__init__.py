"""osvgdb: a GDB toolkit for an OSv-style x86-64 unikernel that runs static
Linux executables, and the tools to build, boot and test that kernel."""
