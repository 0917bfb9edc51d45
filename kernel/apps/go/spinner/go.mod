module osvgdb.test/spinner

go 1.19
