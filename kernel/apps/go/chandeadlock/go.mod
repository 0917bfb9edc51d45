module osvgdb.test/chandeadlock

go 1.19
