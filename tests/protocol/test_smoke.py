def test_discovery(http):
    r = http.get("/.well-known/openid-configuration")
    assert r.status_code == 200
    assert r.json()["issuer"] == "http://127.0.0.1:8000"


def test_code_flow(http, flow, register, user):
    client = register()
    params, verifier = flow.code_flow(client)
    r = http.post("/oauth2/token", auth=client.basic, data={"grant_type": "authorization_code", "code": params["code"],
                  "redirect_uri": client.redirect_uri, "code_verifier": verifier})
    assert r.status_code == 200, r.text
    body = r.json()
    r = http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert r.status_code == 200, r.text
    assert r.json()["email"] == "alice@example.com"
