//! `cairn witness`: a C2SP tlog-witness for the logs it is told to follow.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use warp::http::{header, Response, StatusCode};
use warp::hyper::Body;

use crate::log::witness::Witness;

#[derive(clap::Args)]
pub struct WitnessArgs {
    /// Where the witness keeps its key and the latest checkpoint it cosigned per log.
    #[arg(long, env = "CAIRN_WITNESS_DATA", default_value = "./cairn-witness")]
    data: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "CAIRN_WITNESS_LISTEN", default_value = "127.0.0.1:7880")]
    listen: String,
    /// The witness's name, given to its key when the key is made.
    #[arg(long, default_value = "cairn-witness")]
    name: String,
    /// A log to follow, by its note verifier key (`/log/keys`' first line; repeatable).
    #[arg(long = "log", required = true)]
    logs: Vec<String>,
}

pub fn run(args: WitnessArgs) -> Result<()> {
    let witness = Arc::new(Witness::open(&args.data, &args.name, &args.logs)?);
    tokio::runtime::Runtime::new()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        println!("witness key: {}", witness.vkey());
        println!("listening on http://{}", listener.local_addr()?);
        crate::server::serve_connections(listener, move |req, _| {
            let witness = witness.clone();
            async move { handle(&witness, req).await }
        })
        .await;
        Ok(())
    })
}

async fn handle(witness: &Arc<Witness>, req: warp::hyper::Request<Body>) -> Response<Body> {
    if req.method() != warp::http::Method::POST || req.uri().path() != "/add-checkpoint" {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Body::from("only POST /add-checkpoint\n"))
            .unwrap();
    }
    crate::server::witness::add_checkpoint(witness.clone(), req.into_body()).await
}
