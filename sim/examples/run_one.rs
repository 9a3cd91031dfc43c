fn main() {
    let path = std::env::args().nth(1).expect("scenario path");
    let s = plantloop_sim::scenario::Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let r = plantloop_sim::runner::run(s, Default::default());
    println!("{}", serde_json::to_string_pretty(&r).unwrap());
}
