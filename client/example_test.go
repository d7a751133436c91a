package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/trellis-sdwan/trellis/client"
)

// A script authenticates with an access key and pins the controller's
// self-signed certificate.
func Example() {
	ctx := context.Background()
	c, err := client.New(client.Options{
		BaseURL:     "https://manage.example.net:8443",
		Fingerprint: os.Getenv("TRELLIS_FINGERPRINT"),
		Token:       os.Getenv("TRELLIS_ACCESS_KEY"),
	})
	if err != nil {
		log.Fatal(err)
	}
	orgID := os.Getenv("TRELLIS_ORG")
	page, err := c.ListDevices(ctx, orgID, client.ListParams{
		Limit:  100,
		Sort:   "name",
		Filter: map[string]string{"approval": "pending"},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range page.Items {
		if _, err := c.ApproveDevice(ctx, orgID, d.ID); err != nil {
			log.Fatal(err)
		}
	}
}

// All walks every page of a list.
func ExampleAll() {
	ctx := context.Background()
	c, err := client.New(client.Options{BaseURL: "https://manage.example.net:8443", Token: os.Getenv("TRELLIS_ACCESS_KEY")})
	if err != nil {
		log.Fatal(err)
	}
	for org, err := range client.All(ctx, c.ListOrganizations, client.ListParams{Sort: "name"}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(org.Name)
	}
}

// API errors carry the status, code, message and field of the answer.
func ExampleError() {
	ctx := context.Background()
	c, err := client.New(client.Options{BaseURL: "https://manage.example.net:8443", Token: os.Getenv("TRELLIS_ACCESS_KEY")})
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.CreatePathLabel(ctx, os.Getenv("TRELLIS_ORG"), client.PathLabelInput{Name: "MPLS", Type: client.LabelTunnel})
	var apiErr *client.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Code == client.CodeConflict:
		fmt.Println("already there")
	case err != nil:
		log.Fatal(err)
	}
}
