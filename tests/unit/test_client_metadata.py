import pytest

from idbroker.clients.metadata import ClientMetadata, InvalidClientMetadata


@pytest.mark.parametrize("fields,problem", [
    ({"redirect_uris": ["http://app.example/cb"]}, "https"),
    ({"redirect_uris": ["https://app.example/cb#frag"]}, "fragment"),
    ({"redirect_uris": ["/relative"]}, "absolute"),
    ({"redirect_uris": ["myapp:/cb"]}, "reverse-DNS"),
    ({"redirect_uris": []}, "at least one redirect URI"),
    ({"token_endpoint_auth_method": "none", "grant_types": ["client_credentials"], "response_types": []},
     "public client"),
    ({"grant_types": ["password"]}, "unknown grant type"),
    ({"response_types": ["token"]}, "unknown response type"),
    ({"token_endpoint_auth_method": "private_key_jwt"}, "jwks"),
    ({"logo_uri": "javascript:alert(1)"}, "logo_uri"),
    ({"logo_uri": "http://cdn.example/logo.png"}, "https"),
    ({"scopes": ["bad scope"]}, "invalid scope"),
])
def test_invalid_metadata(fields, problem):
    fields.setdefault("redirect_uris", ["https://app.example/cb"])
    with pytest.raises(InvalidClientMetadata) as exc:
        ClientMetadata(client_id="c", **fields).validate()
    assert problem in str(exc.value)


def test_valid_variants():
    ClientMetadata(client_id="c", redirect_uris=["http://127.0.0.1:5000/cb"]).validate()
    ClientMetadata(client_id="c", redirect_uris=["com.example.app:/oauth"],
                   token_endpoint_auth_method="none").validate()
    m = ClientMetadata(client_id="c", redirect_uris=["https://a.example/cb"], response_types=["code", "id_token"])
    m.validate()
    assert "implicit" in m.grant_types  # implied by the response types


def test_implicit_not_allowed_to_custom_schemes():
    with pytest.raises(InvalidClientMetadata):
        ClientMetadata(client_id="c", redirect_uris=["com.example.app:/cb"], response_types=["id_token"]).validate()


def test_redirect_uris_longer_than_the_column_are_refused():
    import pytest

    from idbroker.clients.metadata import ClientMetadata, InvalidClientMetadata

    long_uri = "https://app.example/cb?" + "x" * 2048
    with pytest.raises(InvalidClientMetadata, match="at most 2048"):
        ClientMetadata(client_id="c", redirect_uris=[long_uri]).validate()
