//! The `calico` command line.

fn main() {
    println!("calico");
}
