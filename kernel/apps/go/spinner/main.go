// A busy hang: a goroutine spins forever waiting for a flag nobody sets, and main waits
// for it on a channel. The runtime sees a running goroutine, so it never reports a
// deadlock; the program never ends.
//
// Triage must conclude: hang-busy, kind busy, title naming the goroutine's own function
// main.waitReady (the vCPU's thread unwound through the timer interrupt into Go code,
// down to runtime.goexit); the goroutine list says main.main waits on chan receive.
package main

import (
	"fmt"
	"sync/atomic"
)

var ready int32 // never set: the bug

//go:noinline
func waitReady(done chan<- bool) {
	for atomic.LoadInt32(&ready) == 0 {
	}
	done <- true
}

func main() {
	fmt.Println("spinner: waiting for ready")
	done := make(chan bool)
	go waitReady(done)
	<-done
	fmt.Println("spinner FAILED: ready")
}
