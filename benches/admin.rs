//! Administration figures (filled in below).
fn main() {}
