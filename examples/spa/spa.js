// The single-page example: oidc-client-ts (vendor/, Apache-2.0) against the broker. Its settings
// come from /spa/config.json, which `idbroker demo` fills in (authority = the broker's issuer).
(async () => {
  const $ = (id) => document.getElementById(id);
  const config = await (await fetch("config.json")).json();
  const manager = new oidc.UserManager({
    authority: config.authority,
    client_id: config.client_id,
    redirect_uri: config.redirect_uri,
    post_logout_redirect_uri: config.post_logout_redirect_uri,
    response_type: "code",                      // with PKCE S256, always, in oidc-client-ts
    scope: "openid email profile",
    loadUserInfo: true,                         // profile = ID token claims + userinfo
    userStore: new oidc.WebStorageStateStore({ store: window.sessionStorage }),
  });

  const params = new URLSearchParams(location.search);
  if (params.has("code") || params.has("error")) {
    try {
      await manager.signinRedirectCallback();   // checks state, redeems the code, validates the ID token
    } catch (error) {
      $("status").textContent = "Sign-in failed: " + error.message;
    }
    history.replaceState(null, "", location.pathname);
  } else if (params.has("state")) {
    await manager.signoutRedirectCallback().catch(() => {});
    history.replaceState(null, "", location.pathname);
  }

  const user = await manager.getUser();
  if (user && !user.expired) {
    $("status").textContent = "Signed in as " + (user.profile.email || user.profile.sub);
    $("claims").textContent = JSON.stringify(user.profile, null, 2);
    $("call-api").hidden = $("sign-out").hidden = false;
  } else if (!$("status").textContent.startsWith("Sign-in failed")) {
    $("status").textContent = "Signed out";
    $("sign-in").hidden = false;
  }
  $("sign-in").onclick = () => manager.signinRedirect();
  $("sign-out").onclick = () => manager.signoutRedirect();
  $("call-api").onclick = async () => {
    const answer = await fetch("/api/hello", { headers: { Authorization: "Bearer " + user.access_token } });
    $("api").textContent = JSON.stringify({ status: answer.status, body: await answer.json() }, null, 2);
  };
})();
