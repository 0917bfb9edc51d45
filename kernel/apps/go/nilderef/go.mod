module osvgdb.test/nilderef

go 1.19
