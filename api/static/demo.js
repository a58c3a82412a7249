// The demo page (development only): loads the tracker with the public key given in
// ?key=, then shows the ids and a curl command that pays with them.
(function () {
  "use strict";
  var params = new URLSearchParams(location.search);
  var key = params.get("key") || "";
  var site = params.get("website") || "<WEBSITE_ID>";
  var script = document.createElement("script");
  script.src = "/js/metrivo.js";
  script.setAttribute("data-key", key);
  script.onload = function () {
    var visitor = window.Metrivo.getVisitorId();
    var session = window.Metrivo.getSessionId();
    document.getElementById("visitor-id").textContent = visitor;
    document.getElementById("session-id").textContent = session;
    var body = {
      website_id: site,
      amount: 49,
      currency: "USD",
      provider_payment_id: "pay_demo_" + Date.now(),
      visitor_id: visitor,
      session_id: session
    };
    document.getElementById("curl").textContent =
      "curl -X POST " + location.origin + "/api/payments/manual \\\n" +
      "  -H \"Content-Type: application/json\" \\\n" +
      "  -H \"Authorization: Bearer <SECRET_KEY>\" \\\n" +
      "  -d '" + JSON.stringify(body) + "'";
  };
  document.head.appendChild(script);
})();
