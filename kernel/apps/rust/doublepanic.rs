// A panic while a panic unwinds: Transaction's Drop panics when the transaction was
// neither committed nor rolled back, and main panics in the middle of one. Rust 1.63
// prints both panics, then "thread panicked while panicking. aborting." and stops the
// program with an illegal instruction (SIGILL, its intrinsics::abort).
//
// Triage must conclude: app-abort (not a fault: the runtime aborted on purpose), kind
// rust-panic-in-panic, title "rust-panic: panic in a panic: transfer failed in
// doublepanic::transfer", the first panic's message and frames: doublepanic::transfer |
// doublepanic::main.
struct Transaction {
    committed: bool,
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.committed {
            panic!("transaction dropped without commit");
        }
    }
}

#[inline(never)]
fn transfer(amount: i64) -> i64 {
    let tx = Transaction { committed: false };
    if amount > 100 {
        panic!("transfer failed: amount {} over the limit", amount);
    }
    std::mem::forget(tx);
    amount
}

fn main() {
    println!("doublepanic: transferring");
    let amount = std::env::args().count() as i64 * 500;
    println!("doublepanic FAILED: {}", transfer(amount));
}
