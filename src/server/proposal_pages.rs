//! The server's writes of a package's proposal pages
//! (`crate::proposal_pages`), after each change of its proposals (a
//! publish's write group writes the list itself). The rows are the truth: a failed write is
//! logged and made again by the package's next change, never an error of
//! the request.

use super::Request;

pub async fn write(req: &Request<'_>, name: &str, changed: Option<i64>) {
    let (reg, name) = (req.registry(), name.to_string());
    let written = req.state.db(move |conn| crate::proposal_pages::write(&reg, conn, &name, changed)).await;
    if let Err(e) = written {
        tracing::warn!(error = %e.message, "writing a package's proposal pages failed; its next proposal change writes them");
    }
}
