// A thread named "loader" calls unwrap() on a None (a setting that is not there) and
// panics; main joins it and unwraps the join's Err, so main panics too and the program
// exits with status 101. Two panics on the console: the first is the bug.
//
// Triage must conclude: app-abort, kind rust-panic-called-option-unwrap-on-a-none-value,
// title "rust-panic: called `Option::unwrap()` on a `None` value in
// unwrap::load_setting (thread loader)", guilty frames unwrap::load_setting |
// unwrap::main::{{closure}} (the panic of the thread that panicked first, not main's).
use std::collections::HashMap;
use std::thread;

#[inline(never)]
fn load_setting(settings: &HashMap<&str, u32>, name: &str) -> u32 {
    *settings.get(name).unwrap()
}

fn main() {
    println!("unwrap: loading settings");
    let loader = thread::Builder::new()
        .name("loader".into())
        .spawn(|| {
            let settings = HashMap::from([("threads", 4)]);
            load_setting(&settings, "timeout")
        })
        .unwrap();
    let timeout = loader.join().unwrap();
    println!("unwrap FAILED: timeout {}", timeout);
}
