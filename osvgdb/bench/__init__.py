"""`osvgdb bench`: what the FS-base switch costs each kind of kernel crossing.

measure.py (bench-crossings' lines -> per-operation figures) and matrix.py (the boots a
matrix needs, the rows they make), table.py (the text) are pure; guest.py boots the
kernel under -icount, host.py runs the host's anchors, command.py is the command.
"""
