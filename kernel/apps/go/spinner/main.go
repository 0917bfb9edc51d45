// A busy hang: main spins in waitReady for a flag that producer would set once it is
// told to start, which nobody does. The runtime sees a running goroutine, so it never
// reports a deadlock; the program never ends.
//
// Triage must conclude: hang-busy, kind busy, signature frames main.waitReady (the
// vCPU's thread unwound through the timer interrupt into Go code: main.waitReady,
// main.main, runtime.main, runtime.goexit, as GDB's bt has them), and the goroutines
// from the runtime's tables: main.waitReady running, main.producer on chan receive.
package main

import (
	"fmt"
	"sync/atomic"
)

var ready int32

func producer(start <-chan bool) {
	<-start // nobody sends: the bug
	atomic.StoreInt32(&ready, 1)
}

//go:noinline
func waitReady() {
	for atomic.LoadInt32(&ready) == 0 {
	}
}

func main() {
	fmt.Println("spinner: waiting for ready")
	go producer(make(chan bool))
	waitReady()
	fmt.Println("spinner FAILED: ready")
}
