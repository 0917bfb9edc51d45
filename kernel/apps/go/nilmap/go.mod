module osvgdb.test/nilmap

go 1.19
