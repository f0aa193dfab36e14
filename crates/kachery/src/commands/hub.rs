//! `kachery hub …`: run a hub in the foreground until Ctrl-C or SIGTERM.

use anyhow::Context;
use kachery_hub::HubConfig;

use crate::cli::{HubCommand, HubServeArgs};
use crate::exit::Failure;

pub async fn run(command: HubCommand) -> anyhow::Result<()> {
    match command {
        HubCommand::Serve(args) => serve(args).await,
        HubCommand::PrintDefaultConfig => {
            print!("{}", HubConfig::default_toml());
            Ok(())
        }
    }
}

async fn serve(args: HubServeArgs) -> anyhow::Result<()> {
    let mut config =
        HubConfig::load(args.config.as_deref()).context("failed to load the hub configuration")?;
    if let Some(bind) = args.bind {
        config.bind = bind;
    }
    if let Some(public_url) = &args.public_url {
        let parsed = url::Url::parse(public_url)
            .map_err(|err| Failure::usage(format!("invalid --public-url {public_url:?}: {err}")))?;
        config.public_url = Some(parsed);
    }
    if let Some(data_dir) = args.data_dir {
        config.data_dir = data_dir;
    }
    config.dev_login |= args.dev_login;

    let hub = kachery_hub::spawn(config)
        .await
        .context("failed to start the hub")?;
    eprintln!(
        "kachery hub listening on {} (public URL {})",
        hub.local_addr(),
        hub.public_url()
    );
    if args.dev_login {
        eprintln!("DEV LOGIN is on: anyone who can reach this address can act as any e-mail");
    }

    shutdown_signal().await;
    eprintln!("shutting down");
    hub.shutdown()
        .await
        .context("the hub did not shut down cleanly")?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler succeeds on Unix");
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate.recv() => {}
    }
}
