# Sourced by osvgdb.gdb.replay_session() in a replay (osvgdb replay DIR): at the end of
# the recording, the commands that run the guest forward are refused in one line
# instead of replaying the QMP quit that closed the recording, after which QEMU can
# no longer go back. (An error in a pre-hook keeps the command from running.)
define hook-continue
osv-replay-forward-check continue
end
define hook-step
osv-replay-forward-check step
end
define hook-next
osv-replay-forward-check next
end
define hook-stepi
osv-replay-forward-check stepi
end
define hook-nexti
osv-replay-forward-check nexti
end
define hook-finish
osv-replay-forward-check finish
end
define hook-until
osv-replay-forward-check until
end
define hook-advance
osv-replay-forward-check advance
end
define hook-jump
osv-replay-forward-check jump
end
