module osvgdb.test/goroutines

go 1.19
