// Emporium storefront: optional extras. Every page works without this file.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // Search as you type: suggestions from the search API into the box's datalist.
  var box = document.querySelector("[data-suggest]");
  var list = document.getElementById("suggestions");
  if (box && list) {
    var timer = null, last = "";
    box.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var q = box.value.trim();
        if (q.length < 2 || q === last) return;
        last = q;
        fetch("/api/search/suggest?q=" + encodeURIComponent(q), { headers: { accept: "application/json" } })
          .then(function (r) { return r.ok ? r.json() : { items: [] }; })
          .then(function (s) {
            list.replaceChildren();
            (s.items || []).forEach(function (name) {
              var o = document.createElement("option");
              o.value = name;
              list.appendChild(o);
            });
          })
          .catch(function () {});
      }, 150);
    });
  }

  // One submit per form marked data-once: a double click sends it once (the
  // server's idempotency key makes a second one harmless anyway).
  document.querySelectorAll("form[data-once]").forEach(function (form) {
    form.addEventListener("submit", function (e) {
      if (form.dataset.sent) { e.preventDefault(); return; }
      form.dataset.sent = "1";
      form.querySelectorAll("button[type=submit]").forEach(function (b) {
        b.setAttribute("aria-busy", "true");
      });
    });
  });

  // Live order status: poll until the order leaves PENDING, then show the result.
  var status = document.querySelector("[data-poll]");
  if (status) {
    var url = status.getAttribute("data-poll"), tries = 0;
    var poll = function () {
      if (++tries > 120) return;
      fetch(url, { headers: { accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (s) {
          if (s && s.status && s.status !== "PENDING") { location.reload(); }
          else { setTimeout(poll, 1000); }
        })
        .catch(function () { setTimeout(poll, 2000); });
    };
    setTimeout(poll, 1000);
  }
})();
