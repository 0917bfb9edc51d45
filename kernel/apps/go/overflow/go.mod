module osvgdb.test/overflow

go 1.19
