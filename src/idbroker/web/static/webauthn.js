// Passkeys and security keys (WebAuthn) on the hosted pages. No inline script (the pages' CSP
// allows only script-src 'self'): everything comes from data- attributes or a fetch.
//
// - [data-webauthn="login"] on the login page: passwordless sign-in, from its button and from
//   the browser's autofill of the username field (autocomplete="username webauthn", conditional
//   mediation). Options and verification are JSON endpoints (data-options-url, data-verify-url)
//   protected by the page's CSRF token (data-csrf, sent as X-CSRF-Token).
// - form[data-webauthn="register"] (setting one up) and form[data-webauthn="authenticate"]
//   (second factor) on the /mfa pages: the options are in data-options; the browser's answer is
//   put in the form's "credential" field and the form is posted as usual.
//
// Messages come from the element's data-msg-* attributes, in the page's language.
(function () {
  "use strict";

  // -- base64url <-> bytes ------------------------------------------------------------------------
  function toBytes(value) {
    var b64 = String(value).replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var raw = atob(b64);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // -- options (JSON from the server) and credentials (JSON to the server) ------------------------
  function descriptors(list) {
    return (list || []).map(function (d) { return Object.assign({}, d, { id: toBytes(d.id) }); });
  }

  function creationOptions(json) {
    var o = Object.assign({}, json);
    o.challenge = toBytes(json.challenge);
    o.user = Object.assign({}, json.user, { id: toBytes(json.user.id) });
    o.excludeCredentials = descriptors(json.excludeCredentials);
    return o;
  }

  function requestOptions(json) {
    var o = Object.assign({}, json);
    o.challenge = toBytes(json.challenge);
    o.allowCredentials = descriptors(json.allowCredentials);
    return o;
  }

  function credentialJSON(cred) {
    var r = cred.response;
    var response = { clientDataJSON: toBase64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toBase64url(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      response.authenticatorData = toBase64url(r.authenticatorData);
      response.signature = toBase64url(r.signature);
      if (r.userHandle && r.userHandle.byteLength) response.userHandle = toBase64url(r.userHandle);
    }
    var out = {
      id: cred.id,
      rawId: toBase64url(cred.rawId),
      type: cred.type,
      response: response,
      clientExtensionResults: typeof cred.getClientExtensionResults === "function" ? cred.getClientExtensionResults() : {}
    };
    if (cred.authenticatorAttachment) out.authenticatorAttachment = cred.authenticatorAttachment;
    return out;
  }

  // -- messages -------------------------------------------------------------------------------------
  function ServerError(message) {
    this.name = "ServerError";
    this.message = message;
  }

  function messageFor(el, err) {
    var d = el.dataset;
    if (err && err.name === "ServerError" && err.message) return err.message;
    if (err && err.name === "NotAllowedError") return d.msgCancelled || d.msgFailed;
    if (err && err.name === "InvalidStateError") return d.msgExists || d.msgFailed;
    if (err && (err.name === "SecurityError" || err.name === "NotSupportedError")) return d.msgUnsupported || d.msgFailed;
    return d.msgFailed;
  }

  function show(el, text) {
    var box = el.querySelector("[data-webauthn-error]");
    if (!box) return;
    box.textContent = text || "";
    box.hidden = !text;
  }

  function supported() {
    return !!(window.PublicKeyCredential && navigator.credentials && window.fetch);
  }

  // -- passwordless sign-in (login page) --------------------------------------------------------
  function setUpLogin(box) {
    var button = box.querySelector("[data-passkey-button]");
    var pending = null; // AbortController of the request in flight (autofill or button)

    function post(url, body) {
      return fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": box.dataset.csrf },
        body: JSON.stringify(body || {})
      }).then(function (res) {
        return res.json().catch(function () { return {}; }).then(function (data) {
          if (!res.ok || !data) throw new ServerError(data && data.error);
          return data;
        });
      });
    }

    function signIn(conditional) {
      if (pending) pending.abort();
      var controller = new AbortController();
      pending = controller;
      if (!conditional) {
        show(box, "");
        if (button) button.disabled = true;
      }
      return post(box.dataset.optionsUrl).then(function (data) {
        var request = { publicKey: requestOptions(data.publicKey), signal: controller.signal };
        if (conditional) request.mediation = "conditional";
        return navigator.credentials.get(request);
      }).then(function (cred) {
        if (!cred) throw new ServerError("");
        return post(box.dataset.verifyUrl, {
          credential: credentialJSON(cred),
          interaction: box.dataset.interaction || "",
          next: box.dataset.next || ""
        });
      }).then(function (data) {
        box.dataset.state = "signed-in";
        window.location.assign(data.redirect);
      }).catch(function (err) {
        if (controller.signal.aborted) return; // replaced by a newer request
        if (button) button.disabled = false;
        pending = null;
        show(box, messageFor(box, err));
        if (!conditional) autofill(); // the email field offers passkeys again
      });
    }

    function autofill() {
      var check = window.PublicKeyCredential.isConditionalMediationAvailable;
      if (typeof check !== "function") return;
      check.call(window.PublicKeyCredential).then(function (available) {
        if (available && !pending) signIn(true);
      }).catch(function () {});
    }

    box.hidden = false;
    if (button) {
      button.addEventListener("click", function () { signIn(false); });
    }
    autofill();
  }

  // -- /mfa forms: set one up, use one ------------------------------------------------------------
  function setUpForm(form, register) {
    var button = form.querySelector("[type=submit]");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      show(form, "");
      if (button) button.disabled = true;
      var ceremony;
      try {
        var options = JSON.parse(form.dataset.options);
        ceremony = register
          ? navigator.credentials.create({ publicKey: creationOptions(options) })
          : navigator.credentials.get({ publicKey: requestOptions(options) });
      } catch (err) {
        ceremony = Promise.reject(err);
      }
      ceremony.then(function (cred) {
        if (!cred) throw new ServerError("");
        form.elements.credential.value = JSON.stringify(credentialJSON(cred));
        form.dataset.state = "submitting";
        form.submit();
      }).catch(function (err) {
        if (button) button.disabled = false;
        show(form, messageFor(form, err));
      });
    });
  }

  function start() {
    var nodes = document.querySelectorAll("[data-webauthn]");
    for (var i = 0; i < nodes.length; i++) {
      var el = nodes[i];
      var kind = el.dataset.webauthn;
      if (!supported()) {
        if (kind !== "login") show(el, el.dataset.msgUnsupported);
        continue;
      }
      if (kind === "login") setUpLogin(el);
      else if (kind === "register") setUpForm(el, true);
      else if (kind === "authenticate") setUpForm(el, false);
      el.dataset.ready = "true";
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
