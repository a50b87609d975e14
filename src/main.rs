fn main() -> std::process::ExitCode {
    crowdgrid::cli::main()
}
