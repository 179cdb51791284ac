using Backprop.Models;

// Train a small classifier on the iris table (4 measurements → 3 species), save it, load it and ask it.
string iris = Path.Combine(AppContext.BaseDirectory, "iris.csv");
var model = Model.Build().Input(4).Dense(16, "relu").Output(3).Seed(1).ForClassification();
var result = model.Fit(iris, new FitOptions { Epochs = 60, BatchSize = 16, LearningRate = 0.01, Seed = 1 });
model.Save("iris.safetensors");   // the CLI reads it: backprop evaluate --model iris.safetensors --data iris.csv

var loaded = Model.Load("iris.safetensors");
float[] flower = [5.1f, 3.5f, 1.4f, 0.2f];
Console.WriteLine($"test accuracy {result.TestAccuracy:P1} after {result.History.Count} epochs; " +
    $"classes {string.Join(", ", loaded.LabelNames)}; {string.Join(",", flower)} is {loaded.PredictLabel(flower)}");
