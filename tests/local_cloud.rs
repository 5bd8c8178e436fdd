//! Shared by the end-to-end tests: a local cloud on the test binary's moto server, under a
//! stack name of its own.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use sluice_cli::{LocalCloud, LocalOptions};
use sluice_localcloud::clock::Clock;
use sluice_tests::{moto_endpoint, project_root, unique_stack_name};

pub async fn start() -> LocalCloud {
    start_with(&[], 1.0).await
}

/// A local cloud with template parameters set and its clock `speed` times real time.
pub async fn start_with(parameters: &[(&str, &str)], speed: f64) -> LocalCloud {
    let options = LocalOptions {
        endpoint: Some(moto_endpoint().to_owned()),
        parameters: parameters.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
        clock: Clock::new(speed).expect("a valid speed"),
        ..LocalOptions::new(project_root(), &unique_stack_name(), SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    };
    LocalCloud::start(&options).await.expect("local cloud starts")
}
