//! `cairn witness`: a C2SP tlog-witness for the logs it is told to follow.

use anyhow::{Context, Result};
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::path::PathBuf;
use std::sync::Arc;

use crate::log::witness::Witness;
use crate::server::body::{self, Body};

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

async fn handle(witness: &Arc<Witness>, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::POST || req.uri().path() != "/add-checkpoint" {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(body::full("only POST /add-checkpoint\n"))
            .unwrap();
    }
    let read = req.into_body().collect().await.ok().map(|b| b.to_bytes());
    body::boxed(crate::server::witness::add_checkpoint(witness.clone(), read).await)
}
