//! `kubectl-sluice`: the command line and kubeconfig → a [`Session`]; errors are printed as
//! `error: …` with exit status 1 (usage errors exit 2, from clap).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use kubectl_sluice::cli::Target;
use kubectl_sluice::{Cli, Error, Session};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        // `kubectl sluice logs JOB | head`: the reader had enough, as kubectl takes it.
        Err(e) if matches!(e.downcast_ref(), Some(Error::Write(w)) if w.kind() == std::io::ErrorKind::BrokenPipe) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, joined by `: `, leaving out a cause whose words its parent already
/// says (kube's errors repeat their source in their own message).
fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain().map(ToString::to_string) {
        if !out.contains(&cause) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&cause);
        }
    }
    out
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let (client, namespace) = connect(&cli.target).await?;
    let session = Session::new(client, &namespace);
    let mut out = std::io::stdout();
    // The library's errors already name the job and namespace: no context to add.
    Ok(session.run(&cli.command, &mut out).await?)
}

/// The client and namespace `kubectl` would use with the same flags.
async fn connect(target: &Target) -> anyhow::Result<(Client, String)> {
    let options = KubeConfigOptions { context: target.context.clone(), ..KubeConfigOptions::default() };
    let config = match (&target.kubeconfig, &target.context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path).with_context(|| format!("reading kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        (None, Some(context)) => Config::from_kubeconfig(&options)
            .await
            .with_context(|| format!("loading context {context} from the kubeconfig"))?,
        (None, None) => {
            Config::infer().await.context("finding a Kubernetes configuration (kubeconfig or in-cluster)")?
        }
    };
    let namespace = target.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).context("creating the Kubernetes client")?;
    Ok((client, namespace))
}
