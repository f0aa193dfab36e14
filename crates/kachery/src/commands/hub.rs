//! `kachery hub …`: run a hub in the foreground until Ctrl-C or SIGTERM, or rotate its
//! master key.

use anyhow::Context;
use kachery_hub::HubConfig;

use crate::cli::{HubCommand, HubRotateKeyArgs, HubServeArgs};
use crate::exit::Failure;

pub async fn run(command: HubCommand) -> anyhow::Result<()> {
    match command {
        HubCommand::Serve(args) => serve(args).await,
        HubCommand::PrintDefaultConfig => {
            print!("{}", HubConfig::default_toml());
            Ok(())
        }
        HubCommand::RotateKey(args) => rotate_key(args).await,
    }
}

async fn rotate_key(args: HubRotateKeyArgs) -> anyhow::Result<()> {
    let mut config =
        HubConfig::load(args.config.as_deref()).context("failed to load the hub configuration")?;
    if let Some(data_dir) = args.data_dir {
        config.data_dir = data_dir;
    }
    let new_key = kachery_hub::read_key_file(&args.new_key_file)?;
    let report = kachery_hub::rotate_master_key(&config, &new_key).await?;

    eprintln!(
        "re-encrypted {} channel secret(s) from key {} to key {} ({} already under the new key)",
        report.n_reencrypted, report.old_key_id, report.new_key_id, report.n_already_new
    );
    let old_place = match &config.master_key_file {
        Some(path) => path.display().to_string(),
        None if std::env::var_os(kachery_hub::keys::MASTER_KEY_ENV).is_some() => {
            kachery_hub::keys::MASTER_KEY_ENV.to_owned()
        }
        None => config
            .data_dir
            .join(kachery_hub::keys::DEV_MASTER_KEY_FILE)
            .display()
            .to_string(),
    };
    eprintln!(
        "now replace the master key in {old_place} with the contents of {}, then start the hub",
        args.new_key_file.display()
    );
    Ok(())
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
