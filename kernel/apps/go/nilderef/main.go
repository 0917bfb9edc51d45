// A nil pointer dereference in a goroutine: the CPU faults, the runtime's SIGSEGV handler
// turns it into a panic ("runtime error: invalid memory address or nil pointer
// dereference" and "[signal SIGSEGV: segmentation violation code=... addr=0x8 pc=...]")
// and the program exits with status 2.
//
// Triage must conclude: app-fault, kind go-SIGSEGV-null, title "go-panic: runtime error:
// invalid memory address or nil pointer dereference in main.(*session).userName",
// guilty frames main.(*session).userName | main.greet (runtime.sigpanic and
// runtime.panicmem are the runtime's).
package main

import (
	"fmt"
	"sync"
)

type user struct {
	id   int
	name string
}

type session struct {
	user *user // nil for a session nobody logged into: the bug
}

//go:noinline
func (s *session) userName() string {
	return s.user.name
}

func greet(s *session, wg *sync.WaitGroup) {
	fmt.Println("nilderef: hello,", s.userName())
	wg.Done() // not deferred: a panic must not wake main first
}

func main() {
	fmt.Println("nilderef: greeting an anonymous session")
	var wg sync.WaitGroup
	wg.Add(1)
	go greet(&session{}, &wg)
	wg.Wait()
	fmt.Println("nilderef FAILED: no fault")
}
