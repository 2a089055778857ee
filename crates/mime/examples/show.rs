//! Debug helper: prints `describe(FILE).render()`.
#![allow(missing_docs, clippy::unwrap_used)]
fn main() {
    for path in std::env::args().skip(1) {
        let raw = std::fs::read(&path).unwrap();
        println!("== {path}");
        match mailroom_mime::describe(&raw) {
            Ok(s) => print!("{}", s.render()),
            Err(e) => println!("error: {e}"),
        }
    }
}
