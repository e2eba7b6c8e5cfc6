fn main() {
    println!("rexi-node: skeleton");
}
