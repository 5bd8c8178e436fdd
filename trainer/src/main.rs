use std::process::ExitCode;

use sluice_trainer::contract::Contract;
use sluice_trainer::train::{Outcome, run};

/// SageMaker runs this as the container's entry point (`train`); with
/// `SLUICE_SAGEMAKER_ROOT` it runs anywhere.
fn main() -> ExitCode {
    let contract = Contract::from_env();
    match run(&contract) {
        Ok(Outcome::Trained { primary_metric: (name, value), .. }) => {
            eprintln!("trained: validation {name} = {value:.4}; bundle in {}", contract.model_dir().display());
            ExitCode::SUCCESS
        }
        Ok(Outcome::TrainedShare(host)) => {
            eprintln!("{host} trained on its shard; the first host evaluates and writes the model");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("training failed: {err}");
            let failure = contract.failure_file();
            let written = failure
                .parent()
                .map(std::fs::create_dir_all)
                .transpose()
                .and_then(|_| std::fs::write(&failure, err.to_string()));
            if let Err(write_err) = written {
                eprintln!("could not write {}: {write_err}", failure.display());
            }
            ExitCode::FAILURE
        }
    }
}
