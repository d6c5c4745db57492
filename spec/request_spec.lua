local prequalify = require "prequalify"

describe("prequalify.request", function()
  it("accepts the vendor documentation's example request", function()
    local req, err = prequalify.request{
      dn = [[\VED\Code Signing\Projects\Sample\Production Environment]],
      data = "q2rFZ7Tqxo2hKc8fvJNtBkO/7qR4LHCm0mQYDJ3HjNs=",
      comment = "File pre-authorized on 03/09/2021 19:23:19",
      user = "local:sample-cs-user",
      single_use = true,
    }
    assert.is_nil(err)
    assert.equal(32, req.digest_length)
    assert.equal("sha256", req.algorithm)
  end)
end)
