fn main() {
    // Fast path for sandbox processes (`wasmk sandbox --spec FILE`): nothing
    // else is initialised, to keep their start-up and memory minimal.
    let args: Vec<std::ffi::OsString> = std::env::args_os().take(4).collect();
    if args.len() >= 2 && args[1] == wasmk::sandbox::LAUNCHER_SUBCOMMAND {
        std::process::exit(wasmk::sandbox::launcher_main());
    }
    if args.len() >= 3 && args[1] == "sandbox" {
        let spec = if args[2] == "--spec" {
            args.get(3).map(std::path::PathBuf::from)
        } else {
            args[2]
                .to_str()
                .and_then(|a| a.strip_prefix("--spec="))
                .map(std::path::PathBuf::from)
        };
        if let Some(spec) = spec {
            std::process::exit(wasmk::sandbox::sandbox_main(&spec));
        }
    }
    if let Err(e) = wasmk::cli::run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
