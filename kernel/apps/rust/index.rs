// An index out of bounds in Parser::next_token: Rust panics ("index out of bounds: the
// len is 3 but the index is 3"), unwinds main's thread and exits with status 101.
// Debian's rustc 1.63 prints the old format: thread 'main' panicked at 'MSG', FILE:L:C.
//
// Triage must conclude: app-abort, kind rust-panic-index-out-of-bounds, title
// "rust-panic: index out of bounds: the len is 3 but the index is 3 in
// index::Parser::next_token", guilty frames index::Parser::next_token | index::main
// (core::panicking::panic_bounds_check and the panic machinery skipped, the hash gone).
struct Parser {
    tokens: Vec<&'static str>,
    position: usize,
}

impl Parser {
    #[inline(never)]
    fn next_token(&mut self) -> &'static str {
        let token = self.tokens[self.position]; // no end check: the bug
        self.position += 1;
        token
    }
}

fn main() {
    println!("index: parsing");
    let mut parser = Parser { tokens: vec!["let", "x", "="], position: 0 };
    loop {
        let token = parser.next_token();
        println!("index: token {}", token);
    }
}
