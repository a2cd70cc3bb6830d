use clap::Parser;

fn main() {
    let args = loadtest::cli::Args::parse();
    let json = args.json;
    let cfg = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("herald-load: {e}");
            std::process::exit(2);
        }
    };
    match loadtest::engine::run(cfg) {
        Ok(report) => {
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.human());
            }
        }
        Err(e) => {
            eprintln!("herald-load: {e}");
            std::process::exit(1);
        }
    }
}
