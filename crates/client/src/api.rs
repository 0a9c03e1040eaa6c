//! Typed clients of the services' internal APIs: one method per call, over a
//! [`ServiceClient`] (which brings discovery, deadlines, retries and identity). The
//! paths and types are defined once in `emporium_contracts` and mounted by the
//! providers from the same constants, so a caller cannot build a path or a body
//! the provider does not serve. They live here rather than in the contracts crate
//! because they need the transport, which itself depends on the contracts.

use http::Method;

use emporium_contracts::auth::{LINKS_PATH, Link, LinkRequest};
use emporium_contracts::checkout::{
    AuthorizeRequest, CartReturn, CartSnapshot, Payment, Reservation, ReserveRequest, StockLine,
    TakeCart, TakenCart, fill, paths,
};

use crate::{ClientError, ServiceClient, path_segment};

/// inventory's reservations, by order id (orders' saga).
#[derive(Clone)]
pub struct Inventory(pub ServiceClient);

impl Inventory {
    /// Holds `lines` for the order; `rejected` names what is short.
    pub async fn reserve(
        &self,
        order_id: &str,
        lines: Vec<StockLine>,
    ) -> Result<Reservation, ClientError> {
        let path = fill(paths::RESERVATION, &path_segment(order_id));
        self.0
            .send_json(Method::PUT, &path, &ReserveRequest { lines })
            .await
    }

    /// Turns the order's reservation into a sale.
    pub async fn commit(&self, order_id: &str) -> Result<Reservation, ClientError> {
        let path = fill(paths::RESERVATION_COMMIT, &path_segment(order_id));
        self.0.send_json(Method::POST, &path, &()).await
    }

    /// Gives the order's units back.
    pub async fn release(&self, order_id: &str) -> Result<Reservation, ClientError> {
        let path = fill(paths::RESERVATION_RELEASE, &path_segment(order_id));
        self.0.send_json(Method::POST, &path, &()).await
    }
}

/// payments' money operations, by order id (orders' saga).
#[derive(Clone)]
pub struct Payments(pub ServiceClient);

impl Payments {
    pub async fn authorize(
        &self,
        order_id: &str,
        request: &AuthorizeRequest,
    ) -> Result<Payment, ClientError> {
        let path = fill(paths::AUTHORIZATION, &path_segment(order_id));
        self.0.send_json(Method::PUT, &path, request).await
    }

    /// The order's payment as payments recorded it.
    pub async fn payment(&self, order_id: &str) -> Result<Payment, ClientError> {
        let path = fill(paths::PAYMENT, &path_segment(order_id));
        self.0.get_json(&path).await
    }

    pub async fn capture(&self, order_id: &str) -> Result<Payment, ClientError> {
        let path = fill(paths::CAPTURE, &path_segment(order_id));
        self.0.send_json(Method::POST, &path, &()).await
    }

    /// Voids the authorization, or refunds the capture.
    pub async fn cancel(&self, order_id: &str) -> Result<Payment, ClientError> {
        let path = fill(paths::CANCEL, &path_segment(order_id));
        self.0.send_json(Method::POST, &path, &()).await
    }
}

/// cart's view for checkout (orders).
#[derive(Clone)]
pub struct Cart(pub ServiceClient);

impl Cart {
    /// The user's cart as it stands, priced.
    pub async fn snapshot(&self, user_id: &str) -> Result<CartSnapshot, ClientError> {
        let path = fill(paths::CART, &path_segment(user_id));
        self.0.get_json(&path).await
    }

    /// Takes the user's lines out of the cart for an order (see [`TakeCart`]).
    pub async fn take(&self, user_id: &str, request: &TakeCart) -> Result<TakenCart, ClientError> {
        let path = fill(paths::CART_CHECKOUTS, &path_segment(user_id));
        self.0.send_json(Method::POST, &path, request).await
    }

    /// Puts what the order took back into its cart; true if this call did, false if
    /// it was already back, confirmed, or never taken.
    pub async fn give_back(&self, order_id: &str) -> Result<bool, ClientError> {
        let path = fill(paths::CART_CHECKOUT_RETURN, &path_segment(order_id));
        let answer: CartReturn = self.0.send_json(Method::POST, &path, &()).await?;
        Ok(answer.returned)
    }
}

/// users' one-time links (notifications, just before it mails one).
#[derive(Clone)]
pub struct Users(pub ServiceClient);

impl Users {
    /// A fresh token for a link of `request.purpose` to `request.user_id`.
    pub async fn link(&self, request: &LinkRequest) -> Result<Link, ClientError> {
        self.0.send_json(Method::POST, LINKS_PATH, request).await
    }
}
