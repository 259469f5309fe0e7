module socksify.test/goclient

go 1.19
