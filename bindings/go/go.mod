module github.com/redispool/redispool-go

go 1.21
